"""Deploys `sam build`'s output with the real `sam deploy` into moto's CloudFormation, as a new user
would deploy into an account, then reads back what the stack created and probes its wiring.

moto's CloudFormation creates resources but leaves out parts of what AWS's does. This program adds
those parts, each as AWS documents it, before moto serves a request:
  - the AWS::Serverless-2016-10-31 transform, run by SAM's own translator (samtranslator), as
    CloudFormation runs it on a change set;
  - the template check for dependency cycles ("Circular dependency between resources: [...]",
    CloudFormation's ValidationError), which moto lacks (it recurses until Python gives up);
  - AWS::NoValue removing an element from a list;
  - each role's inline policies put as PutRolePolicy puts them, with IAM's check of the document;
  - AWS::StepFunctions::StateMachine's Definition / DefinitionS3Location and DefinitionSubstitutions;
  - AWS::S3::Bucket's NotificationConfiguration (moto's CloudFormation ignores it), refused as S3
    refuses it when the function's policy does not let S3 invoke it for this bucket (its SourceArn
    and SourceAccount conditions), and its LifecycleConfiguration, put as PutBucketLifecycleConfiguration puts it;
  - a stack created through a change set, created as CreateStack creates one (resources in
    DependsOn order, then its Outputs), where moto's update path ignores DependsOn;
  - AWS::Lambda::EventInvokeConfig (asynchronous invocation's retries and destinations), put as
    PutFunctionEventInvokeConfig puts it;
  - AWS::CloudWatch::Alarm and AWS::SNS::Subscription, put as PutMetricAlarm and Subscribe put them;
  - a stack's deletion failing on a bucket that holds objects, as S3 refuses to delete one;
  - a resource that cannot be created failing the stack (its CREATE_FAILED event with the service's
    reason, then ROLLBACK_COMPLETE), where moto's server answers the request with a 500;
  - a function's ReservedConcurrentExecutions put as PutFunctionConcurrency puts it: refused when it
    would leave the account fewer than 100 unreserved (an account's default quota, 1,000, here);
  - a record of each Lambda invocation that S3 notifications and EventBridge rules make (moto's
    Lambda needs Docker to run code; here nothing runs, the targets are recorded).

stdin:  {"deployments": [{"name": <label>, "args": [<sam deploy arguments>], "cwd": <project folder>,
          "answers": <text typed at sam deploy's prompts>}], "sam": <sam executable>}
stdout: {"deployments": [{"name", "exit", "output", "seconds", "stack": {...}, "probes": {...}}]}
"""

import json
import os
import socket
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# What CloudFormation does that moto's does not


class CycleError(Exception):
    pass


class ResourceFailed(Exception):
    """A resource CloudFormation could not create: its logical id, type and the service's reason."""

    def __init__(self, logical_id: str, resource_type: str, reason: str):
        super().__init__(f"{logical_id}: {reason}")
        self.logical_id, self.resource_type, self.reason, self.stack = logical_id, resource_type, reason, None


def references(node, found: set) -> None:
    """Logical ids a piece of template refers to: Ref, Fn::GetAtt and the ${…} of Fn::Sub."""
    if isinstance(node, list):
        for item in node:
            references(item, found)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
                import re

                for name in re.findall(r"\$\{([^!][^}]*)\}", text):
                    if name not in variables:
                        found.add(name.split(".")[0])
                references(variables, found)
            else:
                references(value, found)


def check_cycles(template: dict) -> None:
    """Raises CycleError naming the resources of the first dependency cycle, as CloudFormation does."""
    resources = template.get("Resources", {})
    edges = {}
    for logical_id, resource in resources.items():
        found: set = set()
        references({k: v for k, v in resource.items() if k != "DependsOn"}, found)
        depends = resource.get("DependsOn", [])
        found.update([depends] if isinstance(depends, str) else depends)
        edges[logical_id] = sorted(found & resources.keys())
    # Tarjan's strongly connected components: any component of two or more resources is a cycle.
    index, low, stack, on_stack, counter, components = {}, {}, [], set(), [0], []

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges[node]:
                components.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    if components:
        raise CycleError(f"Circular dependency between resources: [{', '.join(components[0])}]")


def patch_moto(record: dict) -> None:
    from moto.cloudformation import models as cfn
    from moto.cloudformation import parsing as cfn_parsing
    from moto.cloudformation.exceptions import ValidationError
    from moto.iam import models as iam_models
    from moto.s3 import models as s3_models
    from moto.s3 import notifications as s3_notifications
    from moto.stepfunctions import models as sfn_models
    from moto.events import models as events_models
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self):
            return {}

    def transformed(template: dict) -> dict:
        transforms = template.get("Transform", [])
        transforms = [transforms] if isinstance(transforms, str) else transforms
        if "AWS::Serverless-2016-10-31" in transforms:
            template = transform(template, {}, NoManagedPolicies())
        try:
            check_cycles(template)
        except CycleError as error:
            raise ValidationError(message=str(error))
        return template

    # AWS::NoValue in a list removes the element (a policy under !If, say); moto leaves a None there.
    clean_json = cfn_parsing.clean_json

    def clean_json_without_novalue(resource_json, resources_map):
        cleaned = clean_json(resource_json, resources_map)
        return [item for item in cleaned if item is not None] if isinstance(cleaned, list) else cleaned

    cfn_parsing.clean_json = clean_json_without_novalue

    parse = cfn.Stack.parse_template

    def parse_template(template: str) -> dict:
        return transformed(parse(template)) if template else parse(template)

    cfn.Stack.parse_template = staticmethod(parse_template)

    change_set_parse = cfn.ChangeSet._parse_template

    def change_set_parse_template(self) -> None:
        change_set_parse(self)
        self.template_dict = transformed(self.template_dict)

    cfn.ChangeSet._parse_template = change_set_parse_template

    apply = cfn.ChangeSet.apply

    def apply_change_set(self) -> None:
        if self.change_set_type != "CREATE":
            return apply(self)
        # A new stack from a change set is created as CreateStack creates one: resources in
        # dependency order (moto's update path ignores DependsOn), then its Outputs.
        stack = self.stack
        stack.template, stack.parameters = self.template, self.parameters
        stack._parse_template()
        stack.resource_map = stack._create_resource_map()
        try:
            stack.create_resources()
        except ResourceFailed as failure:
            failure.stack = stack
            raise
        stack.output_map = stack._create_output_map()

    cfn.ChangeSet.apply = apply_change_set

    # A resource whose creation fails, by its logical id (moto's lets the error end the request with a 500).
    create_resource = cfn_parsing.parse_and_create_resource

    def parse_and_create_resource(logical_id, resource_json, resources_map, account_id, region_name):
        try:
            return create_resource(logical_id, resource_json, resources_map, account_id, region_name)
        except ResourceFailed:
            raise
        except Exception as error:
            raise ResourceFailed(logical_id, resource_json.get("Type", ""), str(error)) from error

    cfn_parsing.parse_and_create_resource = parse_and_create_resource

    # As CloudFormation does, the failed resource's event with its reason, then the stack rolled back
    # (ROLLBACK_COMPLETE, where `sam deploy` stops); the rollback's deletions are not emulated.
    execute = cfn.CloudFormationBackend.execute_change_set

    def execute_change_set(self, change_set_name, stack_name=None) -> None:
        try:
            execute(self, change_set_name, stack_name)
        except ResourceFailed as failure:
            stack = failure.stack
            stack.events.append(
                cfn.Event(stack.stack_id, stack.name, failure.logical_id, "", failure.resource_type, "CREATE_FAILED", failure.reason, None)
            )
            stack._add_stack_event("ROLLBACK_COMPLETE")
            stack.status = "ROLLBACK_COMPLETE"

    cfn.CloudFormationBackend.execute_change_set = execute_change_set

    create_machine = sfn_models.StateMachine.create_from_cloudformation_json.__func__

    def create_state_machine(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        if "Definition" in properties:
            text = json.dumps(properties.pop("Definition"))
        elif "DefinitionS3Location" in properties:
            location = properties.pop("DefinitionS3Location")
            backend = s3_models.s3_backends[account_id]["aws"]
            text = backend.get_object(location["Bucket"], location["Key"]).value.decode()
        else:
            text = properties.get("DefinitionString", "")
        for name, value in (properties.get("DefinitionSubstitutions") or {}).items():
            text = text.replace("${" + name + "}", str(value))
        properties["DefinitionString"] = text
        return create_machine(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    sfn_models.StateMachine.create_from_cloudformation_json = classmethod(create_state_machine)

    create_bucket = s3_models.FakeBucket.create_from_cloudformation_json.__func__

    def create_bucket_with_notifications(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        bucket = create_bucket(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        notifications = cloudformation_json.get("Properties", {}).get("NotificationConfiguration", {})
        functions = []
        for config in notifications.get("LambdaConfigurations", []):
            arn = config["Function"]
            # S3 checks it may invoke the destination, for this bucket, when the configuration is put.
            if not lambda_allows_s3(arn, account_id, region_name, bucket.name):
                raise ValueError(f"Unable to validate the following destination configurations: {arn}")
            rules = config.get("Filter", {}).get("S3Key", {}).get("Rules", [])
            functions.append(
                {
                    "CloudFunction": arn,
                    "Event": [config["Event"]],
                    "Filter": {"S3Key": {"FilterRule": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}},
                }
            )
        if functions:
            backend = s3_models.s3_backends[account_id]["aws"]
            backend.put_bucket_notification_configuration(bucket.name, {"CloudFunctionConfiguration": functions})
        # CloudFormation's rule properties (Prefix, ExpirationInDays, …) as the API's rules.
        rules = []
        for rule in cloudformation_json.get("Properties", {}).get("LifecycleConfiguration", {}).get("Rules", []):
            api = {"ID": rule.get("Id"), "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
            if "ExpirationInDays" in rule:
                api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
            if "AbortIncompleteMultipartUpload" in rule:
                api["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
            rules.append(api)
        if rules:
            s3_models.s3_backends[account_id]["aws"].put_bucket_lifecycle_configuration(bucket.name, rules)
        return bucket

    s3_models.FakeBucket.create_from_cloudformation_json = classmethod(create_bucket_with_notifications)

    # Deleting a stack deletes its buckets, and S3 refuses to delete one that holds objects
    # (BucketNotEmpty, so the stack's deletion fails); moto's leaves such a bucket silently.
    def delete_bucket_as_s3(cls, resource_name, cloudformation_json, account_id, region_name):
        backend = s3_models.s3_backends[account_id]["aws"]
        if backend.get_bucket(resource_name).keys:
            raise ValueError(f"BucketNotEmpty: The bucket you tried to delete is not empty ({resource_name})")
        backend.delete_bucket(resource_name)

    s3_models.FakeBucket.delete_from_cloudformation_json = classmethod(delete_bucket_as_s3)

    create_role = iam_models.Role.create_from_cloudformation_json.__func__

    def create_role_with_checked_policies(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        policies = cloudformation_json.get("Properties", {}).pop("Policies", [])
        role = create_role(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        # Each inline policy through PutRolePolicy, whose document check IAM applies (moto's
        # CloudFormation stores the document unchecked, as Python text).
        backend = iam_models.iam_backends[account_id]["aws"]
        for policy in policies:
            # IAM reads a document without Version as 2008-10-17 (SAM writes none), which moto's check
            # refuses; 2012-10-17 differs from it only in policy variables, which no statement here uses.
            document = {"Version": "2012-10-17", **policy["PolicyDocument"]}
            backend.put_role_policy(role.name, policy["PolicyName"], json.dumps(document))
        return role

    iam_models.Role.create_from_cloudformation_json = classmethod(create_role_with_checked_policies)

    # A function's reserved concurrency, put as PutFunctionConcurrency puts it: Lambda refuses one that
    # leaves the account under 100 unreserved (moto's check, against MOTO_LAMBDA_CONCURRENCY_QUOTA; its
    # CloudFormation stores the value unchecked).
    from moto.awslambda import models as lambda_models

    create_function = lambda_models.LambdaFunction.create_from_cloudformation_json.__func__

    def create_function_with_reserved_concurrency(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        function = create_function(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        reserved = cloudformation_json.get("Properties", {}).get("ReservedConcurrentExecutions")
        if reserved is not None:
            lambda_models.lambda_backends[account_id][region_name].put_function_concurrency(function.function_name, str(reserved))
        return function

    lambda_models.LambdaFunction.create_from_cloudformation_json = classmethod(create_function_with_reserved_concurrency)

    # AWS::Lambda::EventInvokeConfig (asynchronous invocation: retries, age, destinations), which
    # moto's CloudFormation lacks, put as PutFunctionEventInvokeConfig puts it (moto checks its limits).
    from moto.cloudformation.parsing import get_model_list, get_model_map, get_name_type_map
    from moto.core.common_models import CloudFormationModel
    from moto.awslambda.utils import get_backend as lambda_backend

    class EventInvokeConfigResource(CloudFormationModel):
        __module__ = "moto.awslambda.models"  # moto's model registry names a model's service by its module

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::Lambda::EventInvokeConfig"

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @property
        def physical_resource_id(self) -> str:
            return self.id

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
            properties = dict(cloudformation_json["Properties"])
            function = properties.pop("FunctionName")
            properties.pop("Qualifier", None)
            lambda_backend(account_id, region_name).put_function_event_invoke_config(function, properties)
            resource = cls()
            resource.id = f"{function}-event-invoke-config"
            return resource

    # AWS::CloudWatch::Alarm and AWS::SNS::Subscription, which moto's CloudFormation lacks, put as
    # PutMetricAlarm and Subscribe put them. An alarm's Ref is its name, its Arn attribute its ARN.
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.sns.models import sns_backends

    class MetricAlarmResource(CloudFormationModel):
        __module__ = "moto.cloudwatch.models"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::CloudWatch::Alarm"

        @staticmethod
        def cloudformation_name_type() -> str:
            return "AlarmName"

        @property
        def physical_resource_id(self) -> str:
            return self.alarm.name

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "Arn"

        def get_cfn_attribute(self, attribute_name: str) -> str:
            if attribute_name == "Arn":
                return self.alarm.alarm_arn
            from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

            raise UnformattedGetAttTemplateException()

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
            p = cloudformation_json["Properties"]
            resource = cls()
            resource.alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
                name=p.get("AlarmName", resource_name),
                namespace=p.get("Namespace"),
                metric_name=p.get("MetricName"),
                comparison_operator=p["ComparisonOperator"],
                evaluation_periods=int(p["EvaluationPeriods"]),
                period=int(p["Period"]) if "Period" in p else None,
                threshold=float(p["Threshold"]),
                statistic=p.get("Statistic"),
                description=p.get("AlarmDescription"),
                dimensions=[{"Name": d["Name"], "Value": d["Value"]} for d in p.get("Dimensions", [])],
                alarm_actions=p.get("AlarmActions", []),
                ok_actions=p.get("OKActions", []),
                insufficient_data_actions=p.get("InsufficientDataActions", []),
                datapoints_to_alarm=int(p["DatapointsToAlarm"]) if "DatapointsToAlarm" in p else None,
                extended_statistic=p.get("ExtendedStatistic"),
                unit=p.get("Unit"),
                treat_missing_data=p.get("TreatMissingData"),
            )
            return resource

        @classmethod
        def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
            cloudwatch_backends[account_id][region_name].delete_alarms([resource_name])

    class SubscriptionResource(CloudFormationModel):
        __module__ = "moto.sns.models"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::SNS::Subscription"

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @property
        def physical_resource_id(self) -> str:
            return self.arn

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
            p = cloudformation_json["Properties"]
            resource = cls()
            resource.arn = sns_backends[account_id][region_name].subscribe(p["TopicArn"], p["Endpoint"], p["Protocol"]).arn
            return resource

    for cache in (get_model_list, get_model_map, get_name_type_map):
        cache.cache_clear()

    def lambda_allows_s3(arn: str, account_id: str, region_name: str, bucket: str) -> bool:
        from fnmatch import fnmatchcase
        from moto.awslambda.utils import get_backend

        try:
            policy = json.loads(json.loads(get_backend(account_id, region_name).get_policy(arn, None))["Policy"])
        except Exception:
            return False
        # The request context S3 invokes with: this bucket's ARN and the bucket owner's account.
        context = {"aws:sourcearn": f"arn:aws:s3:::{bucket}", "aws:sourceaccount": account_id}

        def holds(condition: dict) -> bool:
            for operator, keys in condition.items():
                for key, wanted in keys.items():
                    value = context.get(key.lower())
                    values = wanted if isinstance(wanted, list) else [wanted]
                    like = operator in ("ArnLike", "StringLike")
                    if value is None or not any(fnmatchcase(value, w) if like else value == w for w in values):
                        return False
            return True

        return any(
            s.get("Effect") == "Allow"
            and s.get("Principal", {}).get("Service") == "s3.amazonaws.com"
            and s.get("Action") in ("lambda:InvokeFunction", "lambda:*")
            and holds(s.get("Condition", {}))
            for s in policy.get("Statement", [])
        )

    def invoke_recorded(account_id, event_body, fn_arn, region_name):
        record["invocations"].append({"via": "s3", "function": fn_arn, "event": event_body})

    s3_notifications._invoke_awslambda = invoke_recorded

    send = events_models.Rule.send_to_targets

    def send_to_targets(self, original_event, transform_input=True):
        lambdas = [t for t in self.targets if t["Arn"].startswith("arn:aws:lambda:")]
        if lambdas and self.event_pattern.matches_event(original_event):
            for target in lambdas:
                record["invocations"].append({"via": f"rule {self.name}", "function": target["Arn"], "event": original_event})
        others = [t for t in self.targets if t not in lambdas]
        if others:
            kept, self.targets = self.targets, others
            try:
                send(self, original_event, transform_input)
            finally:
                self.targets = kept

    events_models.Rule.send_to_targets = send_to_targets


# ---------------------------------------------------------------------------------------------
# What a deployed stack is made of, read back through the AWS APIs


def describe_stack(session, stack_name: str) -> dict:
    cfn = session.client("cloudformation")
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
    resources = {
        r["LogicalResourceId"]: {"type": r["ResourceType"], "id": r["PhysicalResourceId"]}
        for r in cfn.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    }
    lam, iam, s3 = session.client("lambda"), session.client("iam"), session.client("s3")
    functions, roles = {}, {}
    for logical_id, resource in resources.items():
        if resource["type"] == "AWS::Lambda::Function":
            config = lam.get_function_configuration(FunctionName=resource["id"])
            functions[logical_id] = {
                "arn": config["FunctionArn"],
                "memory": config["MemorySize"],
                "timeout": config["Timeout"],
                "runtime": config["Runtime"],
                "architectures": config.get("Architectures"),
                "environment": config.get("Environment", {}).get("Variables", {}),
                "role": config["Role"],
                "policy": json.loads(lam.get_policy(FunctionName=resource["id"])["Policy"]) if has_policy(lam, resource["id"]) else None,
                "asyncConfig": async_config(lam, resource["id"]),
                "reservedConcurrency": reserved_concurrency(lam, resource["id"]),
            }
        if resource["type"] == "AWS::IAM::Role":
            names = iam.list_role_policies(RoleName=resource["id"])["PolicyNames"]
            roles[logical_id] = {
                "arn": iam.get_role(RoleName=resource["id"])["Role"]["Arn"],
                "statements": [
                    statement for name in names for statement in iam.get_role_policy(RoleName=resource["id"], PolicyName=name)["PolicyDocument"]["Statement"]
                ],
                "managed": [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=resource["id"])["AttachedPolicies"]],
            }
    bucket = resources["ControlBucket"]["id"]
    notification = s3.get_bucket_notification_configuration(Bucket=bucket)
    notification.pop("ResponseMetadata", None)
    try:
        lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except s3.exceptions.ClientError:
        lifecycle = None
    machine = session.client("stepfunctions").describe_state_machine(stateMachineArn=resources["CaiStateMachine"]["id"])
    table = session.client("dynamodb").describe_table(TableName=resources["RunsTable"]["id"])["Table"]
    events = session.client("events")
    rules = {}
    for rule in events.list_rules()["Rules"]:
        targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        rules[rule["Name"]] = {
            "pattern": json.loads(rule["EventPattern"]),
            "targets": [t["Arn"] for t in targets],
            "deadLetters": [t.get("DeadLetterConfig", {}).get("Arn") for t in targets],
            "retryPolicies": [t.get("RetryPolicy") for t in targets],
        }
    sqs = session.client("sqs")
    queues = {}
    for logical_id, resource in resources.items():
        if resource["type"] == "AWS::SQS::Queue":
            attributes = sqs.get_queue_attributes(QueueUrl=resource["id"], AttributeNames=["All"])["Attributes"]
            queues[logical_id] = {"url": resource["id"], "arn": attributes["QueueArn"], "retentionSeconds": int(attributes["MessageRetentionPeriod"])}
    cloudwatch, sns = session.client("cloudwatch"), session.client("sns")
    alarm_names = [r["id"] for r in resources.values() if r["type"] == "AWS::CloudWatch::Alarm"]
    alarms = {
        a["AlarmName"]: {k: a.get(k) for k in (
            "AlarmArn", "AlarmDescription", "Namespace", "MetricName", "Dimensions", "Statistic", "Period", "EvaluationPeriods",
            "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData", "AlarmActions",
        )}
        for a in (cloudwatch.describe_alarms(AlarmNames=alarm_names)["MetricAlarms"] if alarm_names else [])
    }
    dashboards = {
        r["id"]: cloudwatch.get_dashboard(DashboardName=r["id"])["DashboardBody"]
        for r in resources.values() if r["type"] == "AWS::CloudWatch::Dashboard"
    }
    topics = {
        logical_id: [
            {"protocol": s["Protocol"], "endpoint": s["Endpoint"]}
            for s in sns.list_subscriptions_by_topic(TopicArn=r["id"])["Subscriptions"]
        ]
        for logical_id, r in resources.items() if r["type"] == "AWS::SNS::Topic"
    }
    logs = session.client("logs")
    log_groups = {
        g["logGroupName"]: g.get("retentionInDays")
        for g in logs.describe_log_groups()["logGroups"]
        if any(r["type"] == "AWS::Logs::LogGroup" and r["id"] in (g["logGroupName"], g.get("arn", "")) for r in resources.values())
    }
    return {
        "logGroups": log_groups,
        "status": stack["StackStatus"],
        "outputs": outputs,
        "resources": resources,
        "functions": functions,
        "roles": roles,
        "bucket": {"name": bucket, "notification": notification, "lifecycle": lifecycle},
        "stateMachine": {"arn": machine["stateMachineArn"], "name": machine["name"], "roleArn": machine["roleArn"], "definition": machine["definition"]},
        "table": {
            "name": table["TableName"],
            "keys": table["KeySchema"],
            "indexes": [{"name": i["IndexName"], "keys": i["KeySchema"], "projection": i["Projection"]} for i in table.get("GlobalSecondaryIndexes", [])],
            "billing": table.get("BillingModeSummary", {}).get("BillingMode"),
            "deletionProtection": table.get("DeletionProtectionEnabled", False),
        },
        "rules": rules,
        "queues": queues,
        "alarms": alarms,
        "dashboards": dashboards,
        "topics": topics,
    }


def async_config(lam, name: str):
    """The function's asynchronous invocation configuration (retries, event age, destinations), or None."""
    try:
        config = lam.get_function_event_invoke_config(FunctionName=name)
    except lam.exceptions.ResourceNotFoundException:
        return None
    return {k: config.get(k) for k in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")}


def reserved_concurrency(lam, name: str):
    """The function's reserved concurrency (GetFunctionConcurrency), or None when it has none."""
    reserved = lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
    return None if reserved is None else int(reserved)


def has_policy(lam, name: str) -> bool:
    try:
        lam.get_policy(FunctionName=name)
        return True
    except lam.exceptions.ResourceNotFoundException:
        return False


def probe(session, stack: dict, record: dict) -> dict:
    """Uploads objects to the control bucket and sends execution status changes; reports which functions each reached."""
    s3, events = session.client("s3"), session.client("events")
    bucket = stack["bucket"]["name"]
    machine = stack["stateMachine"]["arn"]
    reached = {}

    def reached_by(label: str, action) -> None:
        before = len(record["invocations"])
        action()
        reached[label] = [i["function"] for i in record["invocations"][before:]]

    for key in ["runs/survey/payload.json", "runs/survey/notes.json", "runs/survey/payload.json.bak", "payload.json", "data/survey/payload.json"]:
        reached_by(f"put {key}", lambda key=key: s3.put_object(Bucket=bucket, Key=key, Body=b"{}"))
    # A run's record, which `sam delete` must leave.
    session.client("dynamodb").put_item(TableName=stack["table"]["name"], Item={"runId": {"S": "survey-0123456789ab"}, "recordType": {"S": "run"}})
    other_machine = machine.rsplit(":", 1)[0] + ":another-machine"
    for status, arn in [("FAILED", machine), ("TIMED_OUT", machine), ("ABORTED", machine), ("SUCCEEDED", machine), ("RUNNING", machine), ("FAILED", other_machine)]:
        detail = {"executionArn": f"{arn.replace(':stateMachine:', ':execution:')}:run-1", "stateMachineArn": arn, "name": "run-1", "status": status, "input": "{}"}
        entry = {"Source": "aws.states", "DetailType": "Step Functions Execution Status Change", "Detail": json.dumps(detail), "Resources": [detail["executionArn"]]}
        reached_by(f"execution {status} of {'this' if arn == machine else 'another'} state machine", lambda entry=entry: events.put_events(Entries=[entry]))
    return reached


def delete_stack(sam: str, deployment: dict, env: dict, session, bucket: str, table: str) -> dict:
    """`sam delete` of a stack whose control bucket holds objects and whose runs table holds a record (the probes put them); what is left."""
    run = subprocess.run(
        [sam, "delete", "--no-prompts", "--stack-name", deployment["stackName"], "--region", "us-east-1"],
        cwd=deployment["cwd"], env=env, capture_output=True, text=True, timeout=600,
    )
    cfn, s3 = session.client("cloudformation"), session.client("s3")
    stacks = [s["StackStatus"] for s in cfn.list_stacks()["StackSummaries"] if s["StackName"] == deployment["stackName"]]
    try:
        objects = s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0)
    except s3.exceptions.NoSuchBucket:
        objects = None
    dynamodb = session.client("dynamodb")
    try:
        records = dynamodb.scan(TableName=table)["Count"]
    except dynamodb.exceptions.ResourceNotFoundException:
        records = None
    # A table left behind is still protected: DeleteTable is refused until protection is turned off.
    refused = None
    if records is not None:
        try:
            dynamodb.delete_table(TableName=table)
            refused = ""
        except dynamodb.exceptions.ClientError as error:
            refused = f'{error.response["Error"]["Code"]}: {error.response["Error"]["Message"]}'
    return {
        "exit": run.returncode,
        "output": run.stdout + run.stderr,
        "stackStatus": stacks[0] if stacks else None,
        "bucketObjects": objects,
        "tableRecords": records,
        "deleteTableRefused": refused,
    }


# ---------------------------------------------------------------------------------------------


def main() -> None:
    spec = json.load(sys.stdin)
    port = free_port()
    os.environ["MOTO_PORT"] = str(port)
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"  # the region the transform builds ARNs in
    os.environ["MOTO_LAMBDA_CONCURRENCY_QUOTA"] = "1000"  # an account's default concurrency quota
    record = {"invocations": []}
    patch_moto(record)
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # "localhost": moto reads a TemplateURL on it as path-style (bucket/key), which sam deploy sends.
    endpoint = f"http://localhost:{port}"
    credentials = {"AWS_ACCESS_KEY_ID": "moto", "AWS_SECRET_ACCESS_KEY": "moto", "AWS_SESSION_TOKEN": "moto"}
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="moto", aws_secret_access_key="moto")
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    results = []
    try:
        for deployment in spec["deployments"]:
            env = {
                k: v for k, v in os.environ.items() if not k.startswith("AWS_")
            } | credentials | {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"}
            started = time.time()
            run = subprocess.run(
                [spec["sam"], "deploy", *deployment["args"]],
                cwd=deployment["cwd"],
                env=env,
                input=deployment.get("answers", ""),
                capture_output=True,
                text=True,
                timeout=600,
            )
            result = {"name": deployment["name"], "exit": run.returncode, "output": run.stdout + run.stderr, "seconds": round(time.time() - started, 1)}
            if run.returncode == 0:
                stack = describe_stack(session, deployment["stackName"])
                result["stack"] = stack
                result["probes"] = probe(session, stack, record)
                if deployment.get("delete"):
                    result["deleted"] = delete_stack(spec["sam"], deployment, env, session, stack["bucket"]["name"], stack["table"]["name"])
            results.append(result)
    finally:
        server.stop()
    json.dump({"deployments": results}, sys.stdout, default=str)


if __name__ == "__main__":
    main()
