"""Glue between Airflow and the library: connections in, clients and URLs out.

Imported only inside tasks (never at DAG parse time). Excluded from DAG parsing by
``dags/.airflowignore``.
"""
