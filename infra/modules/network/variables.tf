variable "name" {
  description = "Name tag prefix of every network resource."
  type        = string
}

variable "cidr_block" {
  description = "The VPC's range; the four subnets are its first four /20s (for a /16)."
  type        = string
}
