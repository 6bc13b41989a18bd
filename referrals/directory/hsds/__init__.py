"""Open Referral HSDS 3.1 in and out: JSON (the API's nested shape) and tabular data packages."""
