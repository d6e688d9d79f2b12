"""gunicorn settings that belong to the code rather than the command line: log format.

Each log line carries its time and the worker's pid, so operators (and the
rate-limit tests) can tell which worker answered a request.
"""

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "worker": {"format": "%(asctime)s [%(process)d] %(levelname)s %(message)s",
                   "datefmt": "%Y-%m-%dT%H:%M:%S"},
    },
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "formatter": "worker", "stream": "ext://sys.stdout"},
    },
    "root": {"handlers": ["stdout"], "level": "WARNING"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "face_api": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}

# gunicorn >= 25 opens a control socket at one fixed path per user ($HOME/.gunicorn);
# several face-api instances on one machine would share it. Nothing here uses it.
control_socket_disable = True
