"""The demo bot's conversation logic: it walks a lesson and reacts to what the learner said."""

from __future__ import annotations

from dataclasses import dataclass

from services.demo_bot.lessons import Lesson, lesson_for

__all__ = ["Teacher"]

_READY_WORDS = ("ready", "sẵn sàng", "san sang", "yes", "ok", "let's go")
_PRAISE = ("Yes! Well done!", "Excellent!", "Great answer!", "Super, that's right!")
_MAX_TRIES = 2


@dataclass
class Teacher:
    """One conversation with one learner."""

    lesson: Lesson
    step: int = -1
    tries: int = 0
    rounds: int = 0

    @classmethod
    def for_bot(cls, bot_id: int) -> Teacher:
        return cls(lesson=lesson_for(bot_id))

    def reply(self, message: str) -> str:
        said = message.lower()
        if self.step < 0:
            self.step = 0
            opener = "Great, you are ready! " if any(w in said for w in _READY_WORDS) else ""
            return f"{self.lesson.greeting} {opener}{self._ask()}"
        current = self.lesson.steps[self.step]
        matched = next((word for word in current.expect if word in said), None)
        if matched is not None:
            reaction = f"{_PRAISE[self.step % len(_PRAISE)]} '{matched.capitalize()}' is right."
            return f"{reaction} {self._advance()}"
        self.tries += 1
        if self.tries < _MAX_TRIES:
            return f"Almost! {current.hint} {current.ask}"
        return f"That's OK, good try! {current.hint} {self._advance()}"

    def _ask(self) -> str:
        return self.lesson.steps[self.step].ask

    def _advance(self) -> str:
        self.tries = 0
        self.step += 1
        if self.step < len(self.lesson.steps):
            return f"Next question: {self._ask()}"
        self.step, self.rounds = 0, self.rounds + 1
        return f"{self.lesson.goodbye} Shall we play again? {self._ask()}"
