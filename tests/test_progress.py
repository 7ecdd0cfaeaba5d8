"""Progress bars: live on a terminal, thinned out when stderr goes to a file."""

import io

from pixloom.progress import LOG_INTERVAL_S, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_redraws_rarely_into_a_log_file(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    bar = progress_bar(range(3))
    assert bar.mininterval == LOG_INTERVAL_S
    assert list(bar) == [0, 1, 2]


def test_bar_stays_live_on_a_terminal_and_keeps_explicit_options(monkeypatch):
    monkeypatch.setattr("sys.stderr", _Terminal())
    assert progress_bar(range(3)).mininterval == 0.1
    assert progress_bar(range(3), mininterval=2.0).mininterval == 2.0
