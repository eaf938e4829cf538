"""The judge: gives every ended simulation with criteria, assertions or a suite its verdict."""
