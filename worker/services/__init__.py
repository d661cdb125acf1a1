"""The service layer: the job pipeline's use cases. No Celery imports here (STYLE practice 1)."""
