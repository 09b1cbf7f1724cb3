"""eft.fitting"""
