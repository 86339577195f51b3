"""Airflow side of the Terrific Totes pipeline: the operators and pure helpers the DAG composes.

Shipped to MWAA in plugins.zip together with ``totes/naming.py``; nothing here needs the ETL
package, which runs in the Lambdas.
"""
