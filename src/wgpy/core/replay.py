"""Sliding-window replay protection for transport counters (whitepaper section 5.4.6).

A port of the Linux module's counter_validate(): a ring of 64-bit words covering
COUNTER_BITS_TOTAL counters, of which COUNTER_WINDOW_SIZE are usable (one word of slack lets
the window advance a whole word at a time). A counter is accepted once, and only while it is
no more than COUNTER_WINDOW_SIZE behind the greatest accepted one. The caller validates only
after the packet authenticated, so forged packets never move the window.
"""

from wgpy.core.constants import COUNTER_BITS_TOTAL, COUNTER_WINDOW_SIZE, REJECT_AFTER_MESSAGES

_BITS_PER_WORD = 64
_WORDS = COUNTER_BITS_TOTAL // _BITS_PER_WORD
_WORD_MASK = _WORDS - 1


class ReplayWindow:
    __slots__ = ("_greatest", "_words")

    def __init__(self) -> None:
        # `_greatest` is one more than the greatest accepted counter (0: none yet), as the
        # kernel keeps it, so counter 0 is valid exactly once.
        self._greatest = 0
        self._words = [0] * _WORDS

    def reset(self) -> None:
        self._greatest = 0
        self._words = [0] * _WORDS

    def would_accept(self, counter: int) -> bool:
        """What validate() would answer, without changing anything."""
        if self._greatest >= REJECT_AFTER_MESSAGES + 1 or counter >= REJECT_AFTER_MESSAGES:
            return False
        counter += 1
        if counter + COUNTER_WINDOW_SIZE < self._greatest:
            return False
        if counter > self._greatest:
            return True
        word = self._words[(counter >> 6) & _WORD_MASK]
        return not (word >> (counter & 63)) & 1

    def validate(self, counter: int) -> bool:
        """Accept (and remember) `counter`, or reject it as replayed or too old."""
        if self._greatest >= REJECT_AFTER_MESSAGES + 1 or counter >= REJECT_AFTER_MESSAGES:
            return False
        counter += 1
        greatest = self._greatest
        if counter + COUNTER_WINDOW_SIZE < greatest:
            return False
        words = self._words
        index = counter >> 6
        if counter > greatest:
            current = greatest >> 6
            for i in range(1, min(index - current, _WORDS) + 1):
                words[(current + i) & _WORD_MASK] = 0
            self._greatest = counter
        index &= _WORD_MASK
        bit = 1 << (counter & 63)
        if words[index] & bit:
            return False
        words[index] |= bit
        return True
