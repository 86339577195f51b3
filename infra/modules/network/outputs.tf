output "vpc_id" {
  value = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Two private subnets in two availability zones, routed through the NAT gateway."
  value       = aws_subnet.private[*].id
}
