"""What people see of a job log: clean tails, and a failed job's cause in one line (raw logs stay whole)."""

from __future__ import annotations

import json

from tuneforge.log_lines import clean_lines, failure_cause, failure_message
from tuneforge.progress import EVENT_PREFIX

EVENT = EVENT_PREFIX + json.dumps({"type": "progress", "step": 1, "total_steps": 2, "loss": 1.0})
TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "/data/sft.py", line 12, in <module>',
    "    main()",
    "  File \"/usr/lib/python3/site-packages/huggingface_hub/utils/_http.py\", line 99, in hf_raise_for_status",
    "    raise OfflineModeIsEnabled(msg)",
    "huggingface_hub.errors.OfflineModeIsEnabled: Cannot reach https://huggingface.co/api/models/x: offline mode is enabled.",
]


def test_a_clean_tail_has_no_events_ansi_progress_bars_or_traceback_frames():
    raw = [
        "loading model",
        EVENT,
        "\x1b[32mgreen text\x1b[0m",
        "Map:   0%|          | 0/40 [00:00<?, ?ex/s]\rMap: 100%|██████████| 40/40 [00:00<00:00]",
        " 50%|#####     | 1/2 [00:01<00:01,  1.2it/s]",
        *TRACEBACK,
        "",
    ]
    assert clean_lines(raw) == ["loading model", "green text", TRACEBACK[-1]]


def test_the_cause_of_a_failure_is_the_templates_error_else_the_final_exception():
    template = [EVENT, EVENT_PREFIX + json.dumps({"type": "status", "message": "error: column_map names columns the data lacks: ['q']"}),
                "ERROR: column_map names columns the data lacks: ['q']"]
    assert failure_cause(template) == "column_map names columns the data lacks: ['q']"
    assert failure_cause(["step 1", *TRACEBACK]) == TRACEBACK[-1]
    assert failure_cause(["nothing useful", "bye"]) is None
    message = failure_message(["x", *TRACEBACK], "the training process exited with code 1", "tf-1")
    assert message.startswith("huggingface_hub.errors.OfflineModeIsEnabled") and "exited with code 1" in message
    assert "\n" not in message and "tuneforge jobs logs tf-1 --raw" in message
