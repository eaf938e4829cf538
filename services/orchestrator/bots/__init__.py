"""One adapter per kind of bot target (robot_ai_lesson, openai_chat, http_json)."""
