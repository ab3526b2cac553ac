"""Runs a state machine definition in moto's Step Functions interpreter (an ASL implementation
independent of the local stack's) with canned Lambda replies, and reports how the execution ended
and the size of every state input and output in its history.

stdin: {"definition": <ASL, DefinitionSubstitutions applied, but the two function ARNs (${InferenceFunctionArn}, ${SummarizerFunctionArn}), which moto makes>,
        "manifest": [...items...], "rankReplies": [...], "summarizerReply": {...}, "input": {...}}
stdout: {"status", "error", "cause", "seconds", "events", "stateSizes": [[bytes, event type, field], ...],
         "scheduledTasks": [the parameters of each task the main execution scheduled], "mapRun": {...DescribeMapRun's item counts...}, "output"}

moto's Lambda (without Docker) answers invocations from one queue of canned replies, in order;
the ranks' replies are queued first and the summarizer's last.
"""

import json
import os
import socket
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    spec = json.load(sys.stdin)
    port = free_port()
    # moto's interpreter calls Lambda and S3 through the server's own port.
    os.environ["MOTO_PORT"] = str(port)
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"

    def moto_api(path: str, body: object) -> None:
        request = urllib.request.Request(
            endpoint + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        urllib.request.urlopen(request).read()

    try:
        moto_api("/moto-api/config", {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}})
        client = lambda service: boto3.client(  # noqa: E731
            service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        s3, lam, sfn, iam = client("s3"), client("lambda"), client("stepfunctions"), client("iam")
        manifest = spec["input"]["manifest"]
        s3.create_bucket(Bucket=manifest["Bucket"])
        for bucket in spec.get("buckets", []):
            if bucket != manifest["Bucket"]:
                s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=manifest["Bucket"], Key=manifest["Key"], Body=json.dumps(spec["manifest"]).encode())
        role = iam.create_role(RoleName="cai-state-machine", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        definition = spec["definition"]
        for name in ("Inference", "Summarizer"):
            arn = lam.create_function(
                FunctionName=name.lower(),
                Runtime="nodejs22.x",
                Role=role,
                Handler="index.handler",
                Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},  # an empty zip: moto's Lambda runs no code
            )["FunctionArn"]
            definition = definition.replace("${%sFunctionArn}" % name, arn)
        replies = [json.dumps(r) for r in spec["rankReplies"]] + [json.dumps(spec["summarizerReply"])]
        moto_api("/moto-api/static/lambda-simple/response", {"results": replies, "region": "us-east-1"})
        machine = sfn.create_state_machine(name="cai", definition=definition, roleArn=role)["stateMachineArn"]
        started = time.time()
        execution = sfn.start_execution(stateMachineArn=machine, name="run", input=json.dumps(spec["input"]))["executionArn"]
        while True:
            described = sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                break
            time.sleep(0.5)
        seconds = time.time() - started
        events = [e for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution) for e in page["events"]]
        sizes = []
        for event in events:
            for details in event.values():
                if isinstance(details, dict):
                    for field in ("input", "output", "parameters"):
                        if isinstance(details.get(field), str):
                            sizes.append([len(details[field].encode()), event["type"], field])
        sizes.sort(reverse=True)
        scheduled = [json.loads(e["taskScheduledEventDetails"]["parameters"]) for e in events if e["type"] == "TaskScheduled"]
        map_runs = sfn.list_map_runs(executionArn=execution)["mapRuns"]
        map_run = sfn.describe_map_run(mapRunArn=map_runs[0]["mapRunArn"]) if map_runs else {}
        json.dump(
            {
                "status": described["status"],
                "error": described.get("error"),
                "cause": described.get("cause"),
                "output": described.get("output"),
                "seconds": round(seconds, 1),
                "events": len(events),
                "stateSizes": sizes,
                "scheduledTasks": scheduled,
                "mapRun": {k: map_run.get(k) for k in ("status", "itemCounts", "executionCounts", "maxConcurrency")},
            },
            sys.stdout,
            default=str,
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
