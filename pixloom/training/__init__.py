"""Training: one engine loop (engine.train) for every family, plus tasks that supply losses.

A task (task.py) names its modules, its optimizer phases and its loss; the engine owns
devices, precision, data order, EMA, schedules, checkpoints, resume, logs and scale-out.
"""
