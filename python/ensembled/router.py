"""Router: follows one task's publications, picks the models to ask,
combines their answers and reports them, never blocking on the daemon.
"""
from .combine import Combiner
from .producer import Producer
from .protocol import explores
from .subscriber import Subscriber


class Router:
    """The router of one task.

    publish, ingest: the daemon's endpoints (either may be None: no
    publications followed, or no reports sent). fleet: the models this
    router serves; on exploration queries those the daemon has not seen yet
    are asked too, and before the first publication all of them.
    queue_max, sndhwm: the bounds of the report queue (Producer)."""

    def __init__(self, task="default", publish=None, ingest=None, fleet=(), context=None,
                 queue_max=10000, sndhwm=1000, protocol=2, curve=None):
        self.task = task
        self.fleet = list(fleet)
        self.subscriber = Subscriber(publish, [task], context, curve=curve) if publish else None
        self.producer = Producer(ingest, context, protocol=protocol, sndhwm=sndhwm,
                                 queue_max=queue_max, curve=curve) if ingest else None
        self._body = None
        self.combiner = None

    # -- the published ensemble ----------------------------------------
    def set_body(self, body):
        """Uses body (a decoded publication) from now on."""
        self._body = body
        self.combiner = Combiner(body)

    @property
    def body(self):
        return self._body

    def poll(self, timeout_ms=0):
        """Takes the publications waiting; True when the body changed."""
        if not self.subscriber:
            return False
        if self.task in self.subscriber.poll(timeout_ms):
            self.set_body(self.subscriber.get(self.task))
            return True
        return False

    # -- routing -------------------------------------------------------
    def explores(self, query):
        """Whether query is an exploration query under the published rate
        (True before the first publication: there is no ensemble yet)."""
        if self._body is None:
            return True
        return explores(self.task, query, self._body["explore"]["rate"])

    def models_to_ask(self, query):
        """The ensemble's models; on exploration queries every model of
        explore.models and every model of the fleet the daemon has not seen
        (not in coverage); before the first publication the fleet."""
        if self._body is None:
            return list(self.fleet)
        if not explores(self.task, query, self._body["explore"]["rate"]):
            return list(self._body["models"])
        known = list(self._body["explore"]["models"])
        seen = set(self._body.get("coverage") or ()) | set(known)
        return known + [m for m in self.fleet if m not in seen]

    def combine(self, answers):
        """The ensemble's answer from {model: answer} ("?" abstained, None
        or absent: no answer), or None (no publication yet, or nobody voted
        and no table entry decided)."""
        return self.combiner.combine(answers) if self.combiner else None

    # -- reports (never block) -----------------------------------------
    def report(self, query, answers=None, label=None):
        """Reports the answers got for query ({model: answer}; None answers
        are left out, "?" is an abstention) and/or its true label. Never
        blocks: returns False when the report was dropped (see dropped)."""
        if not self.producer:
            return False
        ok = True
        answered = {m: a for m, a in (answers or {}).items() if a is not None}
        if answered:
            ok = self.producer.prediction(self.task, query, predictions=answered)
        if label is not None:
            ok = self.producer.label(self.task, query, label) and ok
        return ok

    @property
    def dropped(self):
        """Report messages dropped because the daemon did not take them."""
        return self.producer.dropped if self.producer else 0

    @property
    def sent(self):
        return self.producer.sent if self.producer else 0

    @property
    def pending(self):
        return self.producer.pending if self.producer else 0

    def route(self, query, ask):
        """One query: takes new publications, asks the models to ask
        (ask(model, query) -> answer or None), reports the answers, returns
        (the combined answer, the models asked)."""
        self.poll()
        asked = self.models_to_ask(query)
        answers = {m: ask(m, query) for m in asked}
        self.report(query, answers)
        return self.combine(answers), asked

    def close(self, timeout=1.0):
        """Waits at most timeout seconds for queued reports, then closes."""
        if self.subscriber:
            self.subscriber.close()
        if self.producer:
            self.producer.close(timeout)
