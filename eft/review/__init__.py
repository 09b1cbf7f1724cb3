"""eft.review"""
