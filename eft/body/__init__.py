"""eft.body"""
