"""eft.jobs"""
