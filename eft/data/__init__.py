"""eft.data"""
