#!/usr/bin/env python3
"""Drain3's TemplateMiner, default configuration, on the Loghub 2k samples.

For each system found in DIR: the message contents are taken out of the raw log with Loghub's
header format (the same formats ObserveBridge's evaluator embeds), fed to a fresh
drain3.TemplateMiner in file order, timed (add_log_message only), and scored with Loghub's
grouping accuracy against the EventId column of <System>_2k.log_structured.csv.

Usage: drain3_bench.py DIR   (run by benches/drain3.sh inside its virtualenv)
"""

import csv
import logging
import os
import re
import sys
import time
from collections import Counter, defaultdict

from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig

# Loghub's header formats and Drain's published GA (logparser benchmark settings).
SYSTEMS = [
    ("HDFS", r"<Date> <Time> <Pid> <Level> <Component>: <Content>", 0.9975),
    ("Hadoop", r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>", 0.9475),
    ("Spark", r"<Date> <Time> <Level> <Component>: <Content>", 0.92),
    ("Zookeeper", r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>", 0.9665),
    ("BGL", r"<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>", 0.9625),
    ("Apache", r"\[<Time>\] \[<Level>\] <Content>", 1.0),
    ("OpenSSH", r"<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>", 0.7875),
    ("HealthApp", r"<Time>\|<Component>\|<Pid>\|<Content>", 0.78),
]


def logformat_regex(logformat):
    """Loghub's generate_logformat_regex."""
    headers = []
    splitters = re.split(r"(<[^<>]+>)", logformat)
    regex = ""
    for k, part in enumerate(splitters):
        if k % 2 == 0:
            regex += re.sub(" +", "\\\\s+", part)
        else:
            header = part.strip("<").strip(">")
            regex += "(?P<%s>.*?)" % header
            headers.append(header)
    return headers, re.compile("^" + regex + "$")


def contents(path, logformat):
    _, regex = logformat_regex(logformat)
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = regex.search(line.strip())
            if m:
                out.append(m.group("Content"))
    return out


def grouping_accuracy(truth, predicted):
    """Loghub's get_accuracy: lines whose predicted group is exactly their true group."""
    sizes = Counter(predicted)
    groups = defaultdict(list)
    for i, t in enumerate(truth):
        groups[t].append(i)
    correct = 0
    for lines in groups.values():
        ids = {predicted[i] for i in lines}
        if len(ids) == 1 and sizes[predicted[lines[0]]] == len(lines):
            correct += len(lines)
    return correct / len(truth)


def locate(root, name):
    for d in (os.path.join(root, name), root):
        log = os.path.join(d, name + "_2k.log")
        csv_path = log + "_structured.csv"
        if os.path.isfile(log) and os.path.isfile(csv_path):
            return log, csv_path
    return None


def main():
    logging.disable(logging.WARNING)  # drain3 warns that drain3.ini is absent: defaults are the point
    root = sys.argv[1]
    config = TemplateMinerConfig()
    print("Loghub 2k, drain3 TemplateMiner with its default configuration (depth %d, sim_th %s, no masking):\n" % (config.drain_depth, config.drain_sim_th))
    print("| system | lines | clusters (truth) | GA | Drain GA | lines/s |")
    print("|---|---:|---:|---:|---:|---:|")
    total_lines, total_seconds, gas = 0, 0.0, []
    for name, logformat, drain_ga in SYSTEMS:
        found = locate(root, name)
        if not found:
            continue
        log, csv_path = found
        messages = contents(log, logformat)
        with open(csv_path, newline="", encoding="utf-8") as f:
            truth = [row["EventId"] for row in csv.DictReader(f)]
        if len(truth) != len(messages):
            sys.exit("%s: %d rows but %d lines match the header format" % (name, len(truth), len(messages)))
        miner = TemplateMiner(config=TemplateMinerConfig())
        started = time.perf_counter()
        predicted = [miner.add_log_message(m)["cluster_id"] for m in messages]
        seconds = time.perf_counter() - started
        ga = grouping_accuracy(truth, predicted)
        gas.append(ga)
        total_lines += len(messages)
        total_seconds += seconds
        print("| %s | %d | %d (%d) | %.4f | %.4f | %.0f |" % (name, len(messages), len(miner.drain.clusters), len(set(truth)), ga, drain_ga, len(messages) / seconds))
    if not gas:
        sys.exit("%s: no Loghub system found" % root)
    print("| **all** | %d | | %.4f | | %.0f |" % (total_lines, sum(gas) / len(gas), total_lines / total_seconds))


if __name__ == "__main__":
    main()
