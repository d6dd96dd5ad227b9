"""Glue between Airflow and the library: connections in, clients and URLs out; the run
context of a task (``task``), the approval operator (``approval``), where the plans are.

Imported by ``dags/`` and ``plugins/``. What a DAG file imports at parse time (``plans``,
``task``, ``approval``) imports only Airflow at module level: connections are looked up, and
the library's heavy modules imported, at run time (in a task, or a request to the Retirement
page). It lives outside ``dags/``, so the DAG processor never parses it.
"""
