"""A `gcloud` stand-in for the deployment-plan tests: keeps state in the JSON file $GCLOUD_STATE.

Called with `bq` first it stands in for the SDK's `bq`: `show` of a dataset (every dataset
exists, with the access entries granted so far) and `query` of a DCL GRANT on a dataset.

It answers the commands the plan uses with the shapes real gcloud prints (describe fails with
NOT_FOUND until create), refuses a second `scheduler jobs create` as real Cloud Scheduler does,
and logs every call so a test can see exactly which commands ran.
"""

import base64
import json
import os
import re
import stat
import sys

import yaml


def flag(args, name):
    for i, a in enumerate(args):
        if a == name:
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def main(args):
    path = os.environ["GCLOUD_STATE"]
    state = json.load(open(path)) if os.path.exists(path) else {}
    state.setdefault("calls", []).append(args)
    for key in ("topics", "functions", "jobs", "topic_iam", "project_iam", "dataset_access"):
        state.setdefault(key, {})
    code = handle_bq(args[1:], state) if args[:1] == ["bq"] else handle(args, state)
    json.dump(state, open(path, "w"))
    return code


def not_found(what):
    print(f"ERROR: NOT_FOUND: {what} not found", file=sys.stderr)
    return 1


def out(obj):
    print(json.dumps(obj))
    return 0


_GRANT = re.compile(r'GRANT `([^`]+)` ON SCHEMA `[^.`]+\.([^`]+)` TO "([^"]+)"')


def handle_bq(a, s):
    if a[0] == "show":
        dataset = a[-1].split(":", 1)[1]
        return out({"id": a[-1], "location": "US", "access": s["dataset_access"].get(dataset, [])})
    if a[0] == "query":
        grant = _GRANT.fullmatch(a[-1])
        if grant is None:
            print(f"Error in query string: {a[-1]}", file=sys.stderr)
            return 1
        role, dataset, member = grant.groups()
        s["dataset_access"].setdefault(dataset, []).append({"role": role, "iamMember": member})
        return 0
    print(f"ERROR: stand-in bq does not know: {a}", file=sys.stderr)
    return 2


def handle(a, s):
    project = flag(a, "--project")
    if a[:2] == ["auth", "list"]:
        print("deployer@example.com")
        return 0
    if a[:2] == ["projects", "describe"]:
        return out({"projectId": a[2], "projectNumber": "123456789012"})
    if a[:2] == ["projects", "get-iam-policy"]:
        return out({"bindings": [{"role": r, "members": m} for r, m in s["project_iam"].items()]})
    if a[:2] == ["projects", "add-iam-policy-binding"]:
        s["project_iam"].setdefault(flag(a, "--role"), []).append(flag(a, "--member"))
        return 0
    if a[:2] == ["pubsub", "topics"]:
        verb, name = a[2], a[3]
        if verb == "create":
            if name in s["topics"]:
                print("ERROR: ALREADY_EXISTS", file=sys.stderr)
                return 1
            s["topics"][name] = {"name": f"projects/{project}/topics/{name}"}
            return 0
        if name not in s["topics"]:
            return not_found("topic")
        if verb == "describe":
            return out(s["topics"][name])
        if verb == "get-iam-policy":
            b = s["topic_iam"].get(name, {})
            return out({"bindings": [{"role": r, "members": m} for r, m in b.items()]})
        if verb == "add-iam-policy-binding":
            s["topic_iam"].setdefault(name, {}).setdefault(flag(a, "--role"), []).append(
                flag(a, "--member")
            )
            return 0
    if a[0] == "functions":
        verb, name = a[1], a[2]
        if verb == "describe":
            return out(s["functions"][name]) if name in s["functions"] else not_found("function")
        if verb == "deploy":
            env_file = flag(a, "--env-vars-file")
            if env_file:  # what gcloud reads: a YAML map; keep its mode for the tests to see
                env = yaml.safe_load(open(env_file))
                mode = stat.S_IMODE(os.stat(env_file).st_mode)
                s.setdefault("env_files", []).append({"path": env_file, "mode": oct(mode)})
            else:
                env = dict(kv.split("=", 1) for kv in flag(a, "--set-env-vars").split(","))
            n = s["functions"].get(name, {}).get("n", 0) + 1
            s["functions"][name] = {
                "n": n,
                "name": f"projects/{project}/locations/{flag(a, '--region')}/functions/{name}",
                "buildConfig": {
                    "runtime": flag(a, "--runtime"),
                    "entryPoint": flag(a, "--entry-point"),
                },
                "serviceConfig": {
                    "timeoutSeconds": int(flag(a, "--timeout").rstrip("s")),
                    "availableMemory": flag(a, "--memory").replace("MB", "M"),
                    "serviceAccountEmail": flag(a, "--service-account"),
                    "environmentVariables": {**env, "LOG_EXECUTION_ID": "true"},
                    "revision": f"{name}-{n:05d}-abc",
                },
                "eventTrigger": {
                    "pubsubTopic": f"projects/{project}/topics/{flag(a, '--trigger-topic')}"
                },
                "state": "ACTIVE",
            }
            return 0
        if verb == "delete":
            return 0 if s["functions"].pop(name, None) else not_found("function")
    if a[:2] == ["scheduler", "jobs"]:
        verb = a[2]
        name = a[4] if verb in ("create", "update") else a[3]
        job = s["jobs"].get(name)
        if verb == "describe":
            return out(job) if job else not_found("job")
        if verb == "create":
            if job:
                print("ERROR: ALREADY_EXISTS: Job already exists.", file=sys.stderr)
                return 1
            job = s["jobs"][name] = {"name": name, "state": "ENABLED"}
        if verb in ("create", "update"):
            if not job:
                return not_found("job")
            job.update(
                {
                    "schedule": flag(a, "--schedule"),
                    "timeZone": flag(a, "--time-zone"),
                    "pubsubTarget": {
                        "topicName": f"projects/{project}/topics/{flag(a, '--topic')}",
                        "data": base64.b64encode(flag(a, "--message-body").encode()).decode(),
                    },
                }
            )
            return 0
        if verb == "delete":
            return 0 if s["jobs"].pop(name, None) else not_found("job")
        if verb in ("pause", "resume"):
            if not job:
                return not_found("job")
            job["state"] = "PAUSED" if verb == "pause" else "ENABLED"
            return 0
        if verb == "run":
            # Cloud Scheduler -> Pub/Sub -> the function: the function's summary line is logged.
            if not job:
                return not_found("job")
            summary = {"severity": "INFO", "message": "cleanup summary", "status": "success",
                       "trigger": "scheduled", "total_records_deleted": 0, "run_id": "standin"}
            s.setdefault("logs", []).append(json.dumps(summary))
            return 0
    if a[:3] == ["functions", "logs", "read"]:
        print("\n".join(s.get("logs", [])))
        return 0
    print(f"ERROR: stand-in does not know: {a}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
