"""What tests share: a RunContext built from sources and destinations they hold."""
