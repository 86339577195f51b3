variable "name" {
  description = "Globally unique bucket name."
  type        = string
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object's old version is kept. Null: forever."
  type        = number
}

variable "expire_prefixes" {
  description = "Key prefixes whose objects expire, with their age in days."
  type        = map(number)
  default     = {}
}
