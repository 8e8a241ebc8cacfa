DROP TABLE rules_in_force;
