"""Retire a company's customer data: inventory, backup, transfer, verified deletion, evidence.

Plain Python: this package never imports Airflow. The glue in ``include/retirement_airflow``
turns Airflow connections into clients and passes them in; ``dags/`` only wires the tasks.
"""

from __future__ import annotations

__version__ = "0.1.0"
