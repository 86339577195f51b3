# The state machine's definition: the one Amazon States Language template (infra/), filled by
# templatefile(). No provider and no resource, so real Terraform renders it offline and the
# tests compare it byte for byte with what the local stack deploys to moto.

terraform {
  required_version = ">= 1.10"
}

variable "extract_function_arn" {
  type = string
}

variable "transform_function_arn" {
  type = string
}

variable "load_function_arn" {
  type = string
}

variable "lock_function_arn" {
  type = string
}

variable "alerts_topic_arn" {
  type = string
}

output "definition" {
  value = templatefile("${path.module}/../../state_machine.asl.json", {
    extract_function_arn   = var.extract_function_arn
    transform_function_arn = var.transform_function_arn
    load_function_arn      = var.load_function_arn
    lock_function_arn      = var.lock_function_arn
    alerts_topic_arn       = var.alerts_topic_arn
  })
}
