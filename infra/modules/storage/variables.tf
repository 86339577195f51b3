variable "buckets" {
  description = "Globally unique bucket names."
  type        = object({ ingestion = string, processed = string, airflow = string, artifacts = string })
}
