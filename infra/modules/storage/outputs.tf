output "buckets" {
  description = "Role (ingestion, processed, airflow, artifacts) -> the bucket's id, name and ARN."
  value = {
    ingestion = module.ingestion.bucket
    processed = module.processed.bucket
    airflow   = module.airflow.bucket
    artifacts = module.artifacts.bucket
  }
}
