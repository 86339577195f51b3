variable "prefix" {
  type = string
}

variable "environment" {
  type = string
}

variable "account_id" {
  type = string
}

variable "partition" {
  type = string
}

variable "aws_region" {
  type = string
}

variable "function_names" {
  description = "Function (extract, transform, load, lock) -> function name."
  type        = map(string)
}

variable "state_machine_name" {
  type = string
}

variable "built_functions" {
  description = "The artifacts module's functions output: each function's zip, handler, runtime, architecture, layers and hash."
  type = map(object({
    path    = string, key = string, sha256 = string, base64sha256 = string,
    handler = string, runtime = string, architecture = string, layers = list(string),
  }))
}

variable "built_layers" {
  description = "The artifacts module's layers output."
  type = map(object({
    path    = string, key = string, sha256 = string, base64sha256 = string,
    runtime = string, architecture = string,
  }))
}

variable "artifacts_bucket" {
  type = object({ id = string, bucket = string, arn = string })
}

variable "ingestion_bucket" {
  type = object({ id = string, bucket = string, arn = string })
}

variable "processed_bucket" {
  type = object({ id = string, bucket = string, arn = string })
}

variable "source_secret" {
  type = object({ name = string, arn = string })
}

variable "warehouse_secret" {
  type = object({ name = string, arn = string })
}

variable "alerts_topic_arn" {
  type = string
}

variable "kms_key_arn" {
  description = "Key of the alerts topic and the log groups."
  type        = string
}

variable "log_retention_days" {
  type = number
}

variable "memory_mb" {
  type = map(number)
}

variable "ephemeral_mb" {
  type = map(number)
}

variable "timeout_seconds" {
  type = map(number)
}

variable "pg_sslmode" {
  type = string
}

variable "pg_sslmode_dw" {
  type = string
}

variable "metrics_namespace" {
  type = string
}

variable "metrics_service" {
  type = string
}
