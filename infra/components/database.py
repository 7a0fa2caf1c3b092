"""RDS Proxy in front of the existing database (``database_proxy`` in the environment config).

Each warm Lambda execution environment holds one PostgreSQL connection; with 9 phases x their
reserved concurrency plus the service functions plus Hasura, that can exceed ``max_connections``.
The proxy pools them into at most ``max_connections_percent`` of the database's limit. The
functions connect to the proxy's endpoint with prepared statements off (``WORLDGEN_DATABASE_PROXY_ENDPOINT``
in ``worldgen.db.connection``), so a session is never pinned to one database connection.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.components.functions import ImportedNetwork, grant_secret_key
from infra.config import DatabaseProxyConfig, EnvironmentConfig, NetworkConfig

POSTGRES_PORT = 5432


class WorldgenDatabaseProxy(Construct):
    """``endpoint`` is the host the functions connect to; ``security_group`` must be admitted on 5432
    by the database's own security group (infra/README.md, pre-deploy checklist)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        proxy: DatabaseProxyConfig,
        network: NetworkConfig,
        imported: ImportedNetwork,
        secret: secretsmanager.ISecret,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=imported.vpc,
            description=f"{config.stack_name}: RDS Proxy, PostgreSQL from the worldgen functions",
            allow_all_outbound=True,
        )
        for index, group_id in enumerate(network.security_group_ids):
            self.security_group.add_ingress_rule(
                ec2.Peer.security_group_id(group_id),
                ec2.Port.tcp(POSTGRES_PORT),
                f"PostgreSQL from the worldgen functions' security group {index}",
            )
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("rds.amazonaws.com"),
            description=f"{config.stack_name} RDS Proxy: read the database secret",
        )
        secret.grant_read(role)
        grant_secret_key(config, role)
        self.proxy = rds.CfnDBProxy(
            self,
            "Proxy",
            db_proxy_name=config.stack_name,
            engine_family="POSTGRESQL",
            auth=[
                rds.CfnDBProxy.AuthFormatProperty(
                    auth_scheme="SECRETS", secret_arn=secret.secret_arn, iam_auth="DISABLED"
                )
            ],
            role_arn=role.role_arn,
            vpc_subnet_ids=list(network.subnet_ids),
            vpc_security_group_ids=[self.security_group.security_group_id],
            require_tls=True,
        )
        targets: dict[str, Any] = (
            {"db_instance_identifiers": [proxy.identifier]}
            if proxy.target == "instance"
            else {"db_cluster_identifiers": [proxy.identifier]}
        )
        rds.CfnDBProxyTargetGroup(
            self,
            "Targets",
            db_proxy_name=self.proxy.ref,
            target_group_name="default",
            connection_pool_configuration_info=rds.CfnDBProxyTargetGroup.ConnectionPoolConfigurationInfoFormatProperty(
                max_connections_percent=proxy.max_connections_percent,
            ),
            **targets,
        )
        self.endpoint = self.proxy.attr_endpoint
