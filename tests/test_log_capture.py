"""One log capture: lines of a logger for a block, its level and propagation put back after."""

import logging

from runbook_lib.log_capture import CapturedLog, capture_logs


def test_capture_should_collect_a_loggers_lines_and_restore_its_level():
    logger = logging.getLogger("runbook.test_capture")
    logger.setLevel(logging.WARNING)
    with capture_logs("runbook.test_capture") as lines:
        logger.info("kept at INFO")
        logger.debug("below the level")
    logger.info("after the block")
    assert lines == ["kept at INFO"] and isinstance(lines, CapturedLog)
    assert lines.records[0].levelno == logging.INFO and lines.find("kept")
    assert logger.level == logging.WARNING


def test_capture_should_append_into_a_given_list_and_filter_by_prefix():
    into: list[str] = []
    with capture_logs("", ("runbook.a",), into=into) as lines:
        logging.getLogger("runbook.a.x").warning("wanted")
        logging.getLogger("runbook.b").warning("other")
    assert lines is into and into == ["wanted"]


def test_a_silenced_capture_should_keep_its_lines_from_the_parents(caplog):
    caplog.set_level(logging.DEBUG)
    with capture_logs("runbook.silent", level=logging.DEBUG, silence=True) as lines:
        logging.getLogger("runbook.silent.probe").debug("probe line")
    assert lines == ["probe line"] and "probe line" not in caplog.text
    assert logging.getLogger("runbook.silent").propagate
