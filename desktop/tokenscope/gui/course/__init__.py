"""The guided course: lessons read from resources/course/, Show me, and checked notices."""
