"""`saas-quota-exporter demo`: the real exporter against simulated vendors on loopback.

run.py starts it, simulator.py is the one HTTP server playing the vendors, and
vendors/ holds one record per simulated vendor. Nothing here is test machinery: the
tests' fault injection lives in tests/support/.
"""
