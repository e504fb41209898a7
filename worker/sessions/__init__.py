"""Session pages: what each run did, step by step, recorded where it ends and shown by the web server.

``transcript_steps`` reads a gateway run's steps (implement, revise, critique), ``message_steps`` an
in-process run's (the plan), and ``record`` stores a session in Redis (``bot.session_store``) and words the link.
"""
