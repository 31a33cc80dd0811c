"""The QA engineer's views: library editor, impact preview, agreement, fine-tuning."""
