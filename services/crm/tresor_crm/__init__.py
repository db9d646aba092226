"""The CRM service: companies, contacts and everything around them, per tenant."""
