"""How many tokens a run may emit before it lets the event loop serve others.

A fast model can hand over thousands of buffered tokens without ever suspending. Alone, a run should
emit big bursts (the writer then sends them in few writes); among many, each burst must be short,
or a request that has just arrived waits behind every running stream before its first token. So
the burst is a share of one loop turn's budget, split among the runs in flight.
"""

from __future__ import annotations


class Pacer:
    def __init__(self, tokens_per_turn: int = 512, minimum: int = 8) -> None:
        self.tokens_per_turn = tokens_per_turn
        self.minimum = minimum
        self.active = 0  # runs in flight, kept by the RunManager

    def burst(self) -> int:
        return max(self.minimum, self.tokens_per_turn // max(1, self.active))
