"""Cross-check gateway/aws_profile.c against botocore's own loader.

Generates random shared config / credentials files (every section form,
inline ';' and '#', odd whitespace and tabs, continuation and nested
services lines, blank and comment lines inside values, 2-5 KB values, CRLF
/ lone CR / missing final newline, [DEFAULT]), lets botocore parse them
(configloader.raw_config_parse + build_profile_map, credentials merged
over config as botocore.session does), and requires the C parser
(build/tests/test_aws_profile with AWS_PROFILE_VECTORS set) to answer
every lookup the same way. Files botocore refuses (duplicate keys or
sections, which configparser's strict mode rejects and ssmgate accepts,
later value winning) are left out.
"""

import os
import random
import shlex

import pytest

import botocore.configloader
import botocore.exceptions

from harness import run_vectors

BUILD_DIR = os.environ.get(
    "SSMGATE_BUILD_DIR",
    os.path.join(os.path.dirname(__file__), "..", "..", "build"))
PARSER = os.path.join(BUILD_DIR, "tests", "test_aws_profile")

CFG_HEADERS = ["[default]", "[profile a]", '[profile "b c"]',
               "[profile   a2  ]", "[sso-session s]", "[services x]",
               "[other]", "[DEFAULT]", "[a]", "[profile a;b]",
               "[ profile z]", "[profile 'q r']", "[profile default]",
               "[profilex y]"]
CRED_HEADERS = ["[default]", "[a]", "[b c]", "[profile a]", "[DEFAULT]",
                "[x]"]
KEYS = ["region", "k", "Key", "aws_session_token", "x y", "services",
        "ssm", "endpoint_url", "sso_region"]
VALUES = ["us-east-1", "v ; not comment", "v # not comment", "a=b", "a:b",
          "", "\tt\t", " spaced  out ", "é", "x"]
NESTED = ["endpoint_url = http://localhost:4566", "k=v", "other = a ; b"]
LOOKUP_PROFILES = ["default", "a", "b c", "a2", "a;b", "z", "q r", "y",
                   "profile a", "x", "DEFAULT", "nope", "s"]


def rand_value(rng):
    r = rng.random()
    if r < 0.08:
        return "".join(rng.choice("ABCxyz019+/= ;#") for _ in
                       range(rng.randint(300, 5000))).strip() or "t"
    return rng.choice(VALUES)


def rand_file(rng, headers):
    lines = []
    for _ in range(rng.randint(1, 5)):
        lines.append(rng.choice(headers))
        used = set()
        for _ in range(rng.randint(0, 6)):
            r = rng.random()
            if r < 0.1:
                lines.append("")
            elif r < 0.2:
                lines.append(rng.choice(["# c", "; c", "  # indented",
                                         "#[profile fake]"]))
            else:
                key = rng.choice(KEYS)
                if key.lower() in used:
                    continue
                used.add(key.lower())
                delim = rng.choice(["=", " = ", ":", " : ", "\t=\t", "= "])
                indent = rng.choice(["", "", "", " "])
                if rng.random() < 0.15:
                    lines.append(f"{indent}{key}{delim}".rstrip())
                    for _ in range(rng.randint(1, 3)):
                        lines.append(rng.choice(["  ", "\t", "    "]) +
                                     rng.choice(NESTED))
                else:
                    lines.append(f"{indent}{key}{delim}{rand_value(rng)}")
                    if rng.random() < 0.1:
                        lines.append("")
                        lines.append("    continued")
    eol = rng.choice(["\n", "\n", "\r\n", "\r"])
    text = eol.join(lines)
    if rng.random() < 0.8:
        text += eol
    return text


def botocore_view(tmp, cfg, cred):
    cp = os.path.join(tmp, "config")
    kp = os.path.join(tmp, "credentials")
    with open(cp, "w", encoding="utf-8", newline="") as f:
        f.write(cfg)
    with open(kp, "w", encoding="utf-8", newline="") as f:
        f.write(cred)
    raw = botocore.configloader.raw_config_parse(cp)
    full = botocore.configloader.build_profile_map(raw)
    profiles = full["profiles"]
    for name, values in botocore.configloader.raw_config_parse(kp).items():
        if name in profiles:
            profiles[name].update(values)
        else:
            profiles[name] = values
    services = {}
    for sect, values in raw.items():
        if sect.startswith("services"):
            try:
                parts = shlex.split(sect)
            except ValueError:
                continue
            if len(parts) == 2:
                services[parts[1]] = values
    return profiles, full["sso_sessions"], services


def make_vectors(tmp, count=300, seed=4321):
    rng = random.Random(seed)
    out = []
    skipped = 0
    while len(out) < count:
        cfg = rand_file(rng, CFG_HEADERS)
        cred = rand_file(rng, CRED_HEADERS) if rng.random() < 0.6 else ""
        try:
            profiles, ssos, services = botocore_view(tmp, cfg, cred)
        except botocore.exceptions.ConfigParseError:
            skipped += 1
            continue
        queries = []
        for prof in LOOKUP_PROFILES:
            queries.append(["exists", prof, None, None, prof in profiles])
            for key in ["region", "k", "key", "aws_session_token", "x y",
                        "services", "endpoint_url", "Key"]:
                val = profiles.get(prof, {}).get(key)
                if isinstance(val, dict):
                    continue    # nested value: botocore made it a dict
                queries.append(["profile", prof, key, None, val])
            val = ssos.get(prof, {}).get("sso_region")
            if not isinstance(val, dict):
                queries.append(["sso", prof, "sso_region", None, val])
        for block in ["x", "nope"]:
            for svc in ["ssm", "k", "region"]:
                for key in ["endpoint_url", "k", "other"]:
                    val = services.get(block, {}).get(svc)
                    val = val.get(key) if isinstance(val, dict) else None
                    queries.append(["services", block, svc, key, val])
        out.append({"config": cfg, "credentials": cred, "queries": queries})
    return out, skipped


def test_c_parser_matches_botocore(tmp_path):
    if not os.path.exists(PARSER):
        pytest.fail(f"{PARSER} not built")
    vectors, skipped = make_vectors(str(tmp_path))
    assert len(vectors) >= 300
    # The generator must keep producing the interesting shapes.
    assert sum("\r\n" in v["config"] for v in vectors) >= 20
    assert sum(len(max(v["config"].splitlines() or [""], key=len)) > 1000
               for v in vectors) >= 10
    assert sum(" ; " in v["config"] for v in vectors) >= 20
    found = sum(1 for v in vectors for q in v["queries"]
                if q[0] != "exists" and q[4] is not None)
    assert found >= 500
    out = run_vectors(PARSER, "AWS_PROFILE_VECTORS", vectors,
                      tmp_path / "profiles.json")
    assert "0 mismatches" in out, out[-3000:]
