"""Lessons of the demo bot: what it asks, what it hopes to hear, how it reacts."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LESSONS", "Lesson", "Step", "lesson_for"]


@dataclass(frozen=True)
class Step:
    ask: str
    expect: tuple[str, ...]
    hint: str


@dataclass(frozen=True)
class Lesson:
    topic: str
    greeting: str
    steps: tuple[Step, ...]
    goodbye: str


LESSONS: tuple[Lesson, ...] = (
    Lesson(
        topic="animals",
        greeting="Hello! I'm Teacher Bee. Today we learn animal words.",
        steps=(
            Step(
                "What animal says 'meow'?",
                ("cat", "kitten", "mèo"),
                "It is small and likes milk. C-A-T.",
            ),
            Step("Can you say 'dog'?", ("dog",), "Say it with me: dog, D-O-G."),
            Step(
                "What is your favourite animal?",
                ("cat", "dog", "bird", "fish", "elephant", "tiger", "rabbit", "lion", "monkey"),
                "For example: 'My favourite animal is a rabbit.'",
            ),
            Step("How many legs does a bird have?", ("two", "2"), "Look at a chicken: one, two..."),
        ),
        goodbye="Great job today! Bye bye, see you next time!",
    ),
    Lesson(
        topic="colours",
        greeting="Hi there! I'm Teacher Bee. Let's play with colours!",
        steps=(
            Step(
                "What colour is the sky?", ("blue", "xanh"), "Look up on a sunny day: it is blue."
            ),
            Step(
                "What colour is a banana?", ("yellow", "vàng"), "Bananas are yellow, like the sun."
            ),
            Step(
                "What is your favourite colour?",
                ("red", "blue", "green", "yellow", "pink", "purple", "orange", "black", "white"),
                "You can say: 'I like red.'",
            ),
            Step("Can you say 'green'?", ("green",), "Say it with me: green, like grass."),
        ),
        goodbye="Wonderful colours today! Goodbye!",
    ),
    Lesson(
        topic="greetings",
        greeting="Good morning! I'm Teacher Bee. Let's practise saying hello.",
        steps=(
            Step("What is your name?", ("name", "i'm", "i am"), "You can say: 'My name is Lan.'"),
            Step(
                "How old are you?",
                (
                    "old",
                    "years",
                    "1",
                    "2",
                    "3",
                    "4",
                    "5",
                    "6",
                    "7",
                    "8",
                    "9",
                    "ten",
                    "eight",
                    "nine",
                    "seven",
                ),
                "You can say: 'I am nine years old.'",
            ),
            Step(
                "How are you today?",
                ("fine", "good", "great", "ok", "happy"),
                "You can say: 'I'm fine, thank you.'",
            ),
            Step(
                "Can you say 'nice to meet you'?",
                ("nice to meet you", "nice"),
                "Say it with me: nice to meet you!",
            ),
        ),
        goodbye="Nice to meet you too! Bye bye!",
    ),
)


def lesson_for(bot_id: int) -> Lesson:
    """Each bot id teaches one lesson: 16 animals, 17 colours, 18 greetings, 19 animals ..."""
    return LESSONS[(bot_id - 16) % len(LESSONS)]
