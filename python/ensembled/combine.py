"""Combiners (docs/protocol.md, "How a router combines").

Answers are given as {model: answer}: a model absent or mapped to None was
not asked or did not answer; "?" means it abstained. Integer answers are
taken as their decimal text, as the daemon interns them.
"""

import math
import re

ABSTAIN = "?"

_WS = " \t\n\r\f\v"
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


def agreement_key(answer, normalize="exact"):
    """Open answers (docs/protocol.md, "Open answers"): answers agree iff
    their keys are equal under the body's normalize (exact, fold, numeric)."""
    if normalize == "fold":
        t = answer.strip(_WS)
        return ("t", "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in t))
    if normalize == "numeric":
        t = answer.strip(_WS)
        if _DECIMAL.match(t) and math.isfinite(float(t)):
            return ("n", float(t) + 0.0)  # -0 agrees with 0
    return ("t", answer)


def _norm(answer):
    if answer is None or isinstance(answer, str):
        return answer
    if isinstance(answer, int) and not isinstance(answer, bool):
        return str(answer)
    if isinstance(answer, bytes):
        return answer.decode("utf-8")
    raise TypeError("an answer is a str, an int or None, not %r" % (answer,))


def _votes(a):
    return a is not None and a != ABSTAIN


def vote(answers, weights, weighted=True):
    """The (weighted) vote over answers (a list, one per model) with weights:
    the largest total wins; ties go to the answer of the heaviest voter among
    the tied answers, the earlier model on equal weights. None when nobody
    voted."""
    totals = {}
    for a, w in zip(answers, weights):
        if _votes(a):
            totals[a] = totals.get(a, 0.0) + (w if weighted else 1.0)
    if not totals:
        return None
    top = max(totals.values())
    win = None
    for i, a in enumerate(answers):
        if _votes(a) and totals[a] >= top - 1e-12 and (win is None or weights[i] > weights[win]):
            win = i
    return answers[win]


def agreement_pattern(answers):
    """(pattern, classes): walking the answers in order, each distinct answer
    gets the next class index; "?" is -1 and a missing answer (None) -2.
    classes[c] is the answer of class c."""
    classes, pattern = [], []
    for a in answers:
        if a is None:
            pattern.append(-2)
        elif a == ABSTAIN:
            pattern.append(-1)
        else:
            if a not in classes:
                classes.append(a)
            pattern.append(classes.index(a))
    return tuple(pattern), classes


class Combiner:
    """The published combiner of one body (kind vote, weighted, table or
    pattern)."""

    KINDS = ("vote", "weighted", "table", "pattern")

    def __init__(self, body):
        self.open = body.get("answers") == "open"
        self.normalize = body.get("normalize", "exact")
        self.models = list(body["models"])
        comb = body["combiner"]
        self.kind = comb["kind"]
        if self.kind not in self.KINDS:
            raise ValueError("unknown combiner kind %r" % (self.kind,))
        self.weights = [float(w) for w in comb["weights"]]
        if len(self.weights) != len(self.models):
            raise ValueError("combiner.weights: %d weights for %d models"
                             % (len(self.weights), len(self.models)))
        self.table = {}
        for entry in comb.get("table") or []:
            self.table[tuple(entry[:-1])] = entry[-1]

    def ordered(self, answers):
        """The answers of the ensemble's models, in its order."""
        return [_norm(answers.get(m)) for m in self.models]

    def combine(self, answers):
        """The ensemble's answer from {model: answer}; None when nobody voted
        and no table entry decided (fall back to a policy of your own). In an
        open-answer task, agreeing answers count as one and the answer
        returned is the text of the first model (in ensemble order) whose
        answer won."""
        ordered = self.ordered(answers)
        if not self.open:
            return self._combine(ordered)
        keys, text = [], {}
        for a in ordered:
            if _votes(a):
                k = agreement_key(a, self.normalize)
                text.setdefault(k, a)
                keys.append(k)
            else:
                keys.append(a)
        won = self._combine(keys)
        return text.get(won) if won is not None else None

    def _combine(self, ordered):
        if self.kind == "table":
            decision = self.table.get(tuple(ordered))
            if decision is not None:
                return decision
        elif self.kind == "pattern":
            pattern, classes = agreement_pattern(ordered)
            decision = self.table.get(pattern)
            if isinstance(decision, int) and 0 <= decision < len(classes):
                return classes[decision]
        return vote(ordered, self.weights, weighted=self.kind != "vote")
