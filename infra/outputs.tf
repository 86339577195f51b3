# ARNs, names and URIs only: no output carries a credential.
output "state_machine_arn" {
  value = module.pipeline.state_machine_arn
}

output "alerts_topic_arn" {
  value = module.monitoring.alerts_topic_arn
}

output "ingestion_uri" {
  value = "s3://${module.storage.buckets["ingestion"].bucket}"
}

output "processed_uri" {
  value = "s3://${module.storage.buckets["processed"].bucket}"
}

output "lambda_functions" {
  value = module.pipeline.function_names
}

output "source_secret_id" {
  description = "Secret the deploy workflow fills from the source database GitHub secrets (PG_*)."
  value       = module.secrets.source.name
}

output "warehouse_secret_id" {
  description = "Secret the deploy workflow fills from the warehouse GitHub secrets (PG_*_DW)."
  value       = module.secrets.warehouse.name
}

output "airflow_connection_secret_ids" {
  description = "Airflow connection secrets the workflow fills (the warehouse connection)."
  value       = { for id, secret in module.secrets.airflow_connections : id => secret.name }
}

output "airflow_bucket" {
  description = "The MWAA bucket; the workflow syncs dags/ into it."
  value       = module.storage.buckets["airflow"].bucket
}

output "airflow_environment" {
  value = module.orchestration.environment_name
}

output "airflow_webserver_url" {
  value = module.orchestration.webserver_url
}
