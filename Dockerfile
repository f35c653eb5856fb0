# CTE: one image for the web server and the task workers (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN DEBUG=true python manage.py collectstatic --noinput \
    && useradd --system --home /app cte && mkdir -p /app/var && chown -R cte /app/var
USER cte

EXPOSE 8000
# The web server; the worker runs `python manage.py qcluster` from the same image.
CMD ["gunicorn", "cteproject.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "120"]
