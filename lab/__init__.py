"""The lab: real OpenStack services and Pacemaker clusters for the tests, the demo and the bench."""
