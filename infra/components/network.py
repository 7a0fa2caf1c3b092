"""Interface VPC endpoints: how functions in subnets without a NAT route reach the AWS APIs they call.

Created only when ``network.egress`` is ``endpoints``. Every function reads Secrets Manager,
start_generation calls Step Functions, and with Bedrock the phases call bedrock-runtime. CloudWatch
Logs and the Powertools metrics (embedded in the logs) need no endpoint: Lambda ships the logs.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from infra.components.functions import ImportedNetwork
from infra.config import EnvironmentConfig, NetworkConfig

HTTPS = 443


def endpoint_services(config: EnvironmentConfig) -> tuple[str, ...]:
    """The AWS APIs the functions call, as VPC endpoint service suffixes (com.amazonaws.<region>.<suffix>)."""
    services = ("secretsmanager", "states")
    return (*services, "bedrock-runtime") if config.model_provider == "bedrock" else services


class InterfaceEndpoints(Construct):
    """One interface endpoint per service in the configured subnets, private DNS on, so the SDKs'
    default endpoints resolve to it; its security group admits HTTPS from the functions' groups only."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        network: NetworkConfig,
        imported: ImportedNetwork,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=imported.vpc,
            description=f"{config.stack_name}: interface endpoints, HTTPS from the worldgen functions",
            allow_all_outbound=False,
        )
        for index, group_id in enumerate(network.security_group_ids):
            self.security_group.add_ingress_rule(
                ec2.Peer.security_group_id(group_id),
                ec2.Port.tcp(HTTPS),
                f"HTTPS from the worldgen functions' security group {index}",
            )
        region = Stack.of(self).region
        self.endpoints = {
            service: ec2.CfnVPCEndpoint(
                self,
                service.title().replace("-", ""),
                vpc_endpoint_type="Interface",
                service_name=f"com.amazonaws.{region}.{service}",
                vpc_id=network.vpc_id,
                subnet_ids=list(network.subnet_ids),
                security_group_ids=[self.security_group.security_group_id],
                private_dns_enabled=True,
            )
            for service in endpoint_services(config)
        }
