"""One way to write a date and a time everywhere the project shows one (the admin's detail
pages, its lists, the portal): ISO-like, 24-hour, unambiguous in every country. Django's
English defaults wrote the same instant as "Nov. 30, 2026, 7:08 p.m." and "11/30/2026 7:08
p.m."; times are UTC (TIME_ZONE), as the API's timestamps are."""

DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i"
