variable "environment_name" {
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

variable "airflow_version" {
  type = string
}

variable "environment_class" {
  type = string
}

variable "min_workers" {
  type = number
}

variable "max_workers" {
  type = number
}

variable "schedulers" {
  type = number
}

variable "webserver_access_mode" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  description = "Two private subnets in two availability zones."
  type        = list(string)
}

variable "bucket" {
  description = "The MWAA bucket (versioned, private)."
  type        = object({ id = string, bucket = string, arn = string })
}

variable "built" {
  description = "The artifacts module's mwaa output: plugins.zip and requirements.txt."
  type        = object({ plugins_path = string, plugins_sha256 = string, requirements_path = string, requirements_sha256 = string })
}

variable "state_machine_arn" {
  type = string
}

variable "state_machine_name" {
  type = string
}

variable "alerts_topic_arn" {
  type = string
}

variable "kms_key_arn" {
  type = string
}

variable "log_retention_days" {
  type = number
}
