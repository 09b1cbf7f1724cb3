"""eft.geometry"""
