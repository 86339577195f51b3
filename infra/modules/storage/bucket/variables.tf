variable "name" {
  description = "Globally unique bucket name."
  type        = string
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object's old version is kept. Null: forever."
  type        = number
}
