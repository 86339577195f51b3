# Every variable has a default that works for a team following the README's deploy steps; the
# workflow sets only aws_region (from the AWS_REGION secret). Override others in a
# terraform.tfvars beside this file.

variable "environment" {
  description = "Environment name; part of every resource name (see lambdas/totes/naming.py)."
  type        = string
  default     = "dev"

  validation {
    condition     = can(regex("^[a-z0-9]+$", var.environment))
    error_message = "environment must be lower-case letters and digits."
  }
}

variable "aws_region" {
  description = "Region of every resource (the workflow passes the AWS_REGION secret)."
  type        = string
  default     = "eu-west-2"
}

variable "alert_emails" {
  description = "Addresses subscribed to the alerts topic; each must confirm the email AWS sends."
  type        = list(string)
  default     = []
}

variable "artifacts_manifest" {
  description = "Path of the packaging manifest written by `make package`. Null: build/artifacts.json at the repository root."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Retention of every log group (Lambdas, state machine, Airflow)."
  type        = number
  default     = 90
}

variable "lambda_memory_mb" {
  description = "Memory of each function. The lock only reads and writes small lease records."
  type        = map(number)
  default     = { extract = 3008, transform = 3008, load = 3008, lock = 256 }

  validation {
    condition     = toset(keys(var.lambda_memory_mb)) == toset(["extract", "transform", "load", "lock"])
    error_message = "lambda_memory_mb needs exactly extract, transform, load and lock."
  }
}

variable "lambda_ephemeral_storage_mb" {
  description = "Size of each function's /tmp. The load spools a processed batch there (compressed Parquet, about 21 bytes per row) so that its memory does not grow with the batch, the extract builds a run's data and state objects there until they are written (about 37 bytes per row), and the transform holds one table's landed and built objects there at a time (about 55 bytes per row of the largest table); 2048 MB holds about 100 million rows of a batch for the load, 55 million for the extract, 37 million rows of one table for the transform."
  type        = map(number)
  default     = { extract = 2048, transform = 2048, load = 2048, lock = 512 }

  validation {
    condition     = toset(keys(var.lambda_ephemeral_storage_mb)) == toset(["extract", "transform", "load", "lock"]) && alltrue([for mb in values(var.lambda_ephemeral_storage_mb) : mb >= 512 && mb <= 10240])
    error_message = "lambda_ephemeral_storage_mb needs exactly extract, transform, load and lock, each 512 to 10240 (Lambda's limits)."
  }
}

variable "lambda_timeout_seconds" {
  description = "Timeout of each function; 900 is Lambda's maximum and each stage's task timeout in the state machine. The lock waits up to 300 s for another cycle (TOTES_LOCK_WAIT_SECONDS), so its timeout is 360, as AcquireLock's task timeout."
  type        = map(number)
  default     = { extract = 900, transform = 900, load = 900, lock = 360 }

  validation {
    condition     = toset(keys(var.lambda_timeout_seconds)) == toset(["extract", "transform", "load", "lock"])
    error_message = "lambda_timeout_seconds needs exactly extract, transform, load and lock."
  }
}

variable "pg_sslmode" {
  description = "libpq sslmode of the connection to the totesys source (require or stricter on AWS)."
  type        = string
  default     = "require"

  validation {
    condition     = contains(["require", "verify-ca", "verify-full"], var.pg_sslmode)
    error_message = "pg_sslmode must be require, verify-ca or verify-full: the database is reached over the internet."
  }
}

variable "pg_sslmode_dw" {
  description = "libpq sslmode of the connection to the warehouse (require or stricter on AWS)."
  type        = string
  default     = "require"

  validation {
    condition     = contains(["require", "verify-ca", "verify-full"], var.pg_sslmode_dw)
    error_message = "pg_sslmode_dw must be require, verify-ca or verify-full: the database is reached over the internet."
  }
}

variable "freshness_threshold_seconds" {
  description = "Alarm when the newest source change visible in the warehouse is older than this."
  type        = number
  default     = 1800
}

variable "heartbeat_window_seconds" {
  description = "Alarm when no pipeline execution succeeded within this window."
  type        = number
  default     = 3600
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can be restored (0 deletes at once, so a destroyed environment can be recreated under the same names)."
  type        = number
  default     = 7
}

variable "airflow_version" {
  description = "Airflow version of the MWAA environment; the DAG and the lock file are tested against it."
  type        = string
  default     = "3.3.1"
}

variable "mwaa_environment_class" {
  description = "MWAA environment class; mw1.small runs one DAG every 20 minutes with room to spare."
  type        = string
  default     = "mw1.small"
}

variable "mwaa_min_workers" {
  description = "Workers MWAA always keeps."
  type        = number
  default     = 1
}

variable "mwaa_max_workers" {
  description = "Workers MWAA may scale up to (a backfill queues many task instances)."
  type        = number
  default     = 2
}

variable "mwaa_schedulers" {
  description = "Schedulers (2 is MWAA's minimum for Airflow 2 and later)."
  type        = number
  default     = 2
}

variable "mwaa_webserver_access_mode" {
  description = "PUBLIC_ONLY: the Airflow UI is reachable from the internet behind AWS sign-in (IAM); PRIVATE_ONLY: only from inside the VPC."
  type        = string
  default     = "PUBLIC_ONLY"

  validation {
    condition     = contains(["PUBLIC_ONLY", "PRIVATE_ONLY"], var.mwaa_webserver_access_mode)
    error_message = "mwaa_webserver_access_mode must be PUBLIC_ONLY or PRIVATE_ONLY."
  }
}

variable "vpc_cidr_block" {
  description = "Address range of the VPC created for MWAA (ignored with existing_vpc_id)."
  type        = string
  default     = "10.20.0.0/16"
}

variable "existing_vpc_id" {
  description = "Run MWAA in this VPC instead of creating one. Null: a VPC is created."
  type        = string
  default     = null
}

variable "existing_private_subnet_ids" {
  description = "With existing_vpc_id: two private subnets in two availability zones, with a NAT or VPC endpoints for the AWS APIs."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.existing_private_subnet_ids) == 0 || length(var.existing_private_subnet_ids) == 2
    error_message = "MWAA needs exactly two private subnets."
  }
}
