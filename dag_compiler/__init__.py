"""The deploy-time compiler: sourcemarts/*.json -> one compiled JSON that dags/sourcemart_dags.py
turns into Airflow DAGs. `python -m dag_compiler --help`."""
