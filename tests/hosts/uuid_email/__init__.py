"""A host site unlike the example: users with UUID keys who sign in by e-mail (no username).

Run the app's suite under it with ``DJANGO_SETTINGS_MODULE=tests.hosts.uuid_email.settings``
(tox: ``host-uuid-pg`` and ``host-uuid-mysql`` in ``make test``; ``host-uuid``, on SQLite, in
``make tox``).
"""
