"""One answer streamed on a background thread, for a Streamlit script to draw while it grows.

Streamlit runs the script again on every click, so the stream cannot live in the script run: a Stop
click would interrupt that run (or wait behind it). Instead an `Answer` owns the stream on a thread
of its own and keeps what arrived in a `Turn` behind a lock; the script only ever reads a copy
(`snapshot`), redrawing it from a fragment that reruns every fraction of a second. `stop` (the Stop
button's callback) asks the server to abort the chat's run, which ends the stream with `abort` then
`end` and stores the partial answer as "aborted"; if the stream has not ended a little later, the
connection is closed as well.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

from streamwise.client import Client, Stream, errors, events
from streamwise.client.models import SourceDocument, UsedTool

STOP_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class Turn:
    """What an answer holds so far. `status`: streaming, complete, aborted or error."""

    question: str
    text: str = ""
    sources: tuple[SourceDocument, ...] = ()
    tools: tuple[UsedTool, ...] = ()
    calling: tuple[str, ...] = ()
    status: str = "streaming"
    error: str | None = None


@dataclass
class Answer:
    base_url: str
    chatflow_id: str
    chat_id: str
    question: str
    timeout: float = 60.0
    _turn: Turn = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _done: threading.Event = field(init=False, default_factory=threading.Event)
    _stopping: threading.Event = field(init=False, default_factory=threading.Event)
    # Set once the server has answered the prediction: from then on its run exists, so an abort finds it.
    _opened: threading.Event = field(init=False, default_factory=threading.Event)
    _stream: Stream | None = field(init=False, default=None)
    _thread: threading.Thread | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._turn = Turn(self.question)

    def start(self) -> Answer:
        self._thread = threading.Thread(target=self._run, name="streamwise-chat-ui-answer", daemon=True)
        self._thread.start()
        return self

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def snapshot(self) -> Turn:
        with self._lock:
            return self._turn

    def _update(self, **changes: object) -> None:
        with self._lock:
            self._turn = replace(self._turn, **changes)  # type: ignore[arg-type]

    def _run(self) -> None:
        client = Client(base_url=self.base_url, timeout=self.timeout)
        aborted = False
        failure: str | None = None
        try:
            with client.stream(
                self.chatflow_id, self.question, chat_id=self.chat_id, raise_on_error=False
            ) as stream:
                with self._lock:
                    self._stream = stream
                self._opened.set()
                for event in stream:
                    if isinstance(event, events.Token):
                        with self._lock:
                            self._turn = replace(self._turn, text=self._turn.text + event.data, calling=())
                    elif isinstance(event, events.SourceDocuments):
                        self._update(sources=tuple(event.documents))
                    elif isinstance(event, events.UsedTools):
                        self._update(tools=tuple(event.tools), calling=())
                    elif isinstance(event, events.CalledTools):
                        self._update(calling=tuple(tool.tool for tool in event.tools))
                    elif isinstance(event, events.Error):
                        failure = event.message
                    elif isinstance(event, events.Abort):
                        aborted = True
                    elif isinstance(event, events.End):
                        break
        except errors.StreamwiseClientError as exc:
            if not self.stopping:
                failure = getattr(exc, "message", None) or str(exc)
        except Exception as exc:  # the thread must always finish its turn
            if not self.stopping:
                failure = f"{type(exc).__name__}: {exc}"
        finally:
            client.close()
            self._opened.set()
            if aborted or (self.stopping and failure is None):
                self._update(status="aborted", calling=())
            elif failure is not None:
                self._update(status="error", error=failure, calling=())
            else:
                self._update(status="complete", calling=())
            self._done.set()

    def stop(self) -> None:
        """Abort the chat's run on the server; close the connection if it has not ended shortly."""
        if self.done or self.stopping:
            return
        self._stopping.set()
        # A Stop clicked before the server has answered would find no run to abort: wait for it.
        self._opened.wait(STOP_GRACE_SECONDS * 5)
        if self.done:
            return
        try:
            with Client(base_url=self.base_url, timeout=10.0) as client:
                client.abort(self.chatflow_id, self.chat_id)
        except errors.StreamwiseClientError:
            self._hang_up()
            return
        timer = threading.Timer(STOP_GRACE_SECONDS, self._hang_up)
        timer.daemon = True
        timer.start()

    def _hang_up(self) -> None:
        if self.done:
            return
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()  # the reading thread then ends its turn as aborted
