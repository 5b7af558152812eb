"""Two-agent adversarial prompting (GPO): an attacker, a defender and a judge."""
