"""cvsyncd: watch inbox folders and clean every new recording with the Cleanvoice AI API."""

__version__ = "0.1.0"
