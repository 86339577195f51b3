variable "prefix" {
  type = string
}

variable "alerts_topic_name" {
  type = string
}

variable "alert_emails" {
  type = list(string)
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

variable "state_machine_arn" {
  type = string
}

variable "lambda_function_names" {
  description = "Function (extract, transform, load, lock) -> deployed function name."
  type        = map(string)
}

variable "metrics_namespace" {
  type = string
}

variable "metrics_service" {
  description = "The service dimension of the Lambdas' embedded metrics."
  type        = string
}

variable "freshness_threshold_secs" {
  type = number
}

variable "heartbeat_window_secs" {
  type = number
}
